"""``python -m geoattn.train`` (also under ``torchrun ... -m geoattn.train``): the ``geoattn-train`` command."""

from .main import main

if __name__ == "__main__":
    main()
