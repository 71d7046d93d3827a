"""kgan: GAN-based synthetic brain MRI slices in Keras 3 on TensorFlow."""

from kgan import device as _device

# Before anything imports TensorFlow: oneDNN on for x86-64 CPUs unless the user chose
# (kgan/device.py says why and shows the measurements).
_device.enable_onednn()

__version__ = "0.1.0"
