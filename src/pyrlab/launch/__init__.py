"""What launching a lab container takes, for `up`, the exports and the build's self-test
gate alike (which is why it sits below imagebuild/ and run/, see docs/architecture.md):

    plan.py    pure: config + image + port → the engine's RunRequest, names, labels, URLs
    safety.py  what `up` refuses without --allow-unsafe, judged on a plan
    state.py   host side: the token files, the mounted folders, free ports
    ready.py   waiting until JupyterLab answers on its status API (spinner on a TTY)
"""
