"""The bottom floor: SQLModel tables and every database session (see DESIGN §3)."""
