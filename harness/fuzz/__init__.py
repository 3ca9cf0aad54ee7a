"""Fuzz campaigns (`xentcheck fuzz`): random cases run through every backend, each new kind of
finding kept with its shrunk repro. draw: the cases; kinds: what counts as one finding;
campaign: the loop; report: report.md / report.json; shrinking: the child that shrinks; command: the CLI."""
