"""Stand-in for ``samnagui`` (samna's visualizer), imported at module level by Sinabs' dynapcnn I/O."""
