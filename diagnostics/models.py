# AIModel, AnalysisRun, Finding and Feedback arrive with the diagnostics issue.
