"""Store backends behind one interface, chosen by URL scheme; filesystem first."""
