"""The online half: the online store serving reads, and the traffic simulator."""
