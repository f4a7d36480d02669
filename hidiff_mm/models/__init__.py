from . import discriminators, losses  # noqa: F401
from .backbones import *  # noqa: F401,F403
from .editors import *  # noqa: F401,F403
from .latent import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .mixing import *  # noqa: F401,F403
