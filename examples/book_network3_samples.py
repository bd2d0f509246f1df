"""The book's first two chapter 6 samples, with only the imports changed.

    python examples/book_network3_samples.py fc 60      # FullyConnectedLayer + SoftmaxLayer
    python examples/book_network3_samples.py conv 60    # one ConvPoolLayer, then the same

MNIST comes from $NNDL_DATA or the user cache (downloaded and verified if missing).
Figures: docs/book-compat.md, "Full runs".
"""
import sys
from nndl.book import network3
from nndl.book.network3 import Network, ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer

training_data, validation_data, test_data = network3.load_data_shared()
mini_batch_size = 10
if len(sys.argv) != 3 or sys.argv[1] not in ("fc", "conv"):
    sys.exit("usage: python examples/book_network3_samples.py fc|conv EPOCHS")
epochs = int(sys.argv[2])
if sys.argv[1] == "fc":
    net = Network([
        FullyConnectedLayer(n_in=784, n_out=100),
        SoftmaxLayer(n_in=100, n_out=10)], mini_batch_size)
else:
    net = Network([
        ConvPoolLayer(image_shape=(mini_batch_size, 1, 28, 28),
                      filter_shape=(20, 1, 5, 5),
                      poolsize=(2, 2)),
        FullyConnectedLayer(n_in=20*12*12, n_out=100),
        SoftmaxLayer(n_in=100, n_out=10)], mini_batch_size)
net.SGD(training_data, epochs, mini_batch_size, 0.1, validation_data, test_data)
