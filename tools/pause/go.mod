module ferrocanary.io/tools/pause

go 1.23.0
