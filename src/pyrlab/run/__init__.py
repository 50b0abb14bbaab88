"""Running labs: what `up`, `down`, `ps`, `logs`, `shell`, `url` and `restart` share.

    plan.py    pure: config + image + port → the engine's RunRequest, names, labels, URLs
    state.py   host side: the token files, the mounted folders, free ports
    labs.py    finding this project's lab containers and describing them
    ready.py   waiting until JupyterLab answers on its status API (spinner on a TTY)
    start.py   starting and stopping a lab, for `up`, `restart` and `down`
"""
