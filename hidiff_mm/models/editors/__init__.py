from .hidiff import HIDiff

__all__ = ['HIDiff']
