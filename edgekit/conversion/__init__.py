"""The laptop half: loads models and converts them with TensorFlow. TensorFlow and Keras are
imported inside functions, so importing this package stays cheap."""
