"""Where runs execute: the sequence every launcher shares (sequence), the local and Ray launchers, one run in a
fresh worker process (single_run) under its watchdog (watchdog), and the progress board."""
