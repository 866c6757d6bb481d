"""Hamiltonian networks: the Hamiltonian terms (`terms`), the symplectic Euler step that only
they use (`symplectic_euler`) and the network built on them (`net`)."""

from .net import EMBEDDINGS, KINDS, HamiltonianNet
from .symplectic_euler import SymplecticEuler
from .terms import AbstractHamiltonianTerm, HamiltonianTerm, SeparableHamiltonianTerm, log_cosh

__all__ = [
    "EMBEDDINGS",
    "KINDS",
    "AbstractHamiltonianTerm",
    "HamiltonianNet",
    "HamiltonianTerm",
    "SeparableHamiltonianTerm",
    "SymplecticEuler",
    "log_cosh",
]
