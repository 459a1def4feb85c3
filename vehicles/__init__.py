"""Vehicles, RSUs and the Trusted Authority: identities, agents, scenarios, the CLI."""
