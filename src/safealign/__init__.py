"""SafeAlign: every safety-alignment paradigm on the same preference data, judged the same way."""

__version__ = "0.1.0"
