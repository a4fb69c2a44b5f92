"""SinGAN (Shaham, Dekel, Michaeli, ICCV 2019): its config, scale schedule, networks, trained
pyramid, scale game (train, penalty, graphs) and the reference code's folders."""
