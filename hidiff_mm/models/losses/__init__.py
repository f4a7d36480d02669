from .perceptual_loss import LocalPerceptualLoss, LocalVGGFeatures, vgg_layer_names

__all__ = ['LocalPerceptualLoss', 'LocalVGGFeatures', 'vgg_layer_names']
