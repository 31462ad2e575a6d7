"""Code shared by the applications of the project (clients, errors, policies)."""
