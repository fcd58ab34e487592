/* version: the dfs release every binary reports with --version. */
#ifndef DFS_VERSION_H
#define DFS_VERSION_H
#define DFS_VERSION "0.1.0-dev"
#endif
