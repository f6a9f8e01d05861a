"""The local ModelStream-compatible service: the test double of the real one.

It never imports the add-on: see README.md in this folder.
"""
