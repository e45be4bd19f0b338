"""The device half: numpy, Pillow and a TFLite interpreter only. Never imports TensorFlow or Keras
(except `tensorflow.lite` as the interpreter of last resort)."""
