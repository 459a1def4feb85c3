"""The permissioned node side of qkdchain: chains, the KeyRegistry client, errors."""
