#!/bin/sh
# A stand-in for a pipeline task: TASK A B -> a little arithmetic, a JSON result on the last line.
task=$1; a=$2; b=$3
echo "processing $task for $a/$b"
echo "{\"task\": \"$task\", \"a\": $a, \"b\": $b, \"value\": $(( (a * 31 + b * 7) % 1000 ))}"
