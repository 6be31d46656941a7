"""Datasets: the embedded MNIST, the user's CIFAR-10 and ImageNet folders, image files, and the protocol subsets."""
