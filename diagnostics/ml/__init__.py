"""Django-free machine learning: models, preprocessing, inference, Grad-CAM, training."""
