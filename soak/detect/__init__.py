"""Pure detectors: symptoms in, failure kinds and stable titles out.

Nothing here does I/O or reads the clock: the guest runner passes in what it
observed (an exit status, a QMP event, a heartbeat time, a run state) and gets
back a `Verdict` or None. Titles are signatures: they must not contain numbers
that change between occurrences of the same problem, so repeats count up.
"""
