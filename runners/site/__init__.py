"""Site agents: a long-lived process per machine that keeps Parsl's blocks (pilot jobs)
alive and runs the runs queued for it in the tracking store (``bench site``)."""
