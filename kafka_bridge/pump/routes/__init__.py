"""How each direction maps a message to a record: forward and reverse, with the loop guard."""
