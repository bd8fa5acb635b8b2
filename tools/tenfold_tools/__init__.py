"""Development tooling for tenfold: the local test bed and harnesses.

Installed into the development environment only (hack/python-env.sh adds this source root
to the venv); never part of the `tenfold` wheel, so no image carries it.
"""
