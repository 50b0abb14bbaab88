"""Running labs: what `up`, `down`, `ps`, `logs`, `shell`, `url` and `restart` share.

    labs.py    finding this project's lab containers and describing them
    start.py   starting and stopping a lab, for `up`, `restart` and `down`

What a lab container is (its plan, its safety check, its host-side state, its readiness)
is in pyrlab.launch, a layer below, where the build's self-test gate uses it too.
"""
