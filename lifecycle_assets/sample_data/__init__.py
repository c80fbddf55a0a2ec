"""Sample data for the landing zone: the synthetic sample shop and the real CDNOW purchase log.

Neither is part of the pipeline: both only write files in the landing-zone contract that ingest reads.
"""
