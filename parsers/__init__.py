"""Bytes in, facts out: parsing, classification, threading keys, visible text.

Nothing in this package touches the database or the network; every function takes
values and returns frozen values, so each step can be tested alone.
"""
