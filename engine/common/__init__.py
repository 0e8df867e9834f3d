"""What every layer shares: exit codes and the exceptions that map to them (`errors`), writing files under a
temporary name then renaming (`atomic`), and keeping native libraries' output off the terminal (`native_output`).

Imports nothing from the rest of the engine.
"""
