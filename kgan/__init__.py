"""kgan: GAN-based synthetic brain MRI slices in Keras 3 on TensorFlow."""

__version__ = "0.1.0"
