"""IPython's `HTML` and `display`, imported at their first call (see `_federation_patches`).

syft-rds calls them only to show its objects in a notebook; importing IPython costs every
process that imports syft-rds about 0.3 s, which most of them (owners, jobs, the Flower server)
never use. What they return and do is IPython's own.
"""

from __future__ import annotations


def HTML(*args, **kwargs):  # noqa: N802 (IPython's name)
    from IPython.display import HTML as ipython_html

    return ipython_html(*args, **kwargs)


def display(*objs, **kwargs):
    from IPython.display import display as ipython_display

    return ipython_display(*objs, **kwargs)
