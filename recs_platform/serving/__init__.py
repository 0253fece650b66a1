"""Online serving: a BentoML service that answers from the registry's production bundle."""
