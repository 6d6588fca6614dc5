"""NumPy two-layer MLP for CIFAR-10 with cyclic learning rates (KTH DD2424, assignment 2)."""
