"""Online search: providers behind one small interface, chosen by configuration."""
