"""ABC notation: reading and writing it, its bar grammar, and the forms that become it."""
