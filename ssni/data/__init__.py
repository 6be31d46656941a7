"""Datasets, read from the files users have (nothing is downloaded): the embedded MNIST (`mnist`), the CIFAR-10
python batches (`cifar10`), ImageNet class folders (`imagenet`), user images for `ssni purify` and the one
image-file reader (`images`), and the protocol's fixed index subsets (`subsets`)."""
