"""What a run leaves for people: HTML reports and drawings, `nasc show`'s facts, NB201 lookups."""
