"""The applications of SinGAN, one module each, over the library's trained pyramid."""
