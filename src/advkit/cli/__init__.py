"""The advkit command-line interface (thin: parse, build objects, call the library, render)."""
