from .vgg_discriminator import VGGStyleDiscriminator

__all__ = ['VGGStyleDiscriminator']
