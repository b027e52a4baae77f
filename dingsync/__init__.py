"""dingsync: DingTalk to-dos (待办) managed as code."""

__version__ = "0.1.0"
