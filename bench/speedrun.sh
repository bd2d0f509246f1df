#!/bin/sh
# 99% on MNIST in under 30 seconds on two cores, with what chapters 3 and 6 teach:
# the book's two conv-pool ReLU network with a wider dense layer (300), He's weights,
# momentum 0.9, mini-batch 64 with eta scaled up (0.08), eta lowered in a straight line
# to 0.0016 over the 5 epochs, and every image moved by up to one pixel each epoch
# (the book's expansion, on the fly). Prints the book's "Epoch N: C / 10000" test lines.
# MNIST is read from $NNDL_DATA; extra options are passed on (e.g. --seed 1).
# bench/bench_speedrun.py times it against the same recipe in PyTorch.
exec nndl train \
    --layers conv:20:5,pool:2,conv:40:5,pool:2,dense:300,softmax:10 --activation relu --init he \
    --batch-size 64 --eta 0.08 --momentum 0.9 --eta-final 0.0016 --epochs 5 \
    --augment --max-shift 1 --max-degrees 0 --threads 2 --no-progress "$@"
