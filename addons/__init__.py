"""The middle floor: everything that turns an HTTP flow into decoded hops (see DESIGN §2, §4)."""
