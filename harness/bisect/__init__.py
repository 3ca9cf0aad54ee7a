"""`xentcheck bisect`: which release of a package made a case go bad.

One job per module: `indexes` (where packages come from: --index-url, --find-links, the user's
uv and pip settings), `versions` (the candidate releases on those indexes), `install` (uv or
pip: the interpreter, a venv, an install), `pins` (what each environment asks for), `envs` (the
cached environment of one version), `subject` (the cases, run in an environment through the
`--python` worker path, and the version's verdict), `search` (bisection or a sweep), `report`
and `plot` (bisect.json, bisect.md, bisect.png), `hunt` (all of it in order) and `command` (the
command line). Importing any of them imports neither uv nor matplotlib.
"""
