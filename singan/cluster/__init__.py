"""Many images at once, over Ray: the folder run's tasks and tables (many), the Ray runtime
(ray_runner), what a node sends back (folder_copy) and where tasks run (settings)."""
