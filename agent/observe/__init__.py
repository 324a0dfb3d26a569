"""What the agent measures and keeps to be seen: telemetry, log rings, RTT probes, status notes and
the metrics report. May import agent.runtime, agent.values and neon.
"""
