"""The command line: click and rich only. Parses options, calls the library, and turns its typed
errors into one-line messages and documented exit codes."""
