"""Seed chapter, strategy 2: a pure helper dynamo cannot trace (here: a leftover graph_break())."""

import torch


def g(x):
    y = x.sin()
    torch._dynamo.graph_break()
    z = y.sin()
    return z


def f(x):
    w = x.sin()
    return g(w)


def example_inputs():
    return (torch.randn(3),)
