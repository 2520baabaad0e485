"""Cython's decorators where Cython is not installed: the pure build runs the modules that the
compiled build compiles, as Python, and there these decorators do nothing (as Cython's own do
when its module runs uncompiled). A compiled module imports `cython`, or this in its place."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def cclass(cls: T) -> T:
    return cls


def no_gc(cls: T) -> T:
    return cls


def boundscheck(_on: bool) -> Callable[[T], T]:
    return _unchanged


def wraparound(_on: bool) -> Callable[[T], T]:
    return _unchanged


def _unchanged(function: T) -> T:
    return function
