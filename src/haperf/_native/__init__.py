"""Private compiled modules (Cython). Import the public facades instead, e.g. haperf.checksum."""
